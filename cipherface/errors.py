"""One exception hierarchy for everything cipherface reports to a user."""


class CipherfaceError(Exception):
    """Base class: every error cipherface raises on purpose is one of these."""


class ParameterError(CipherfaceError):
    """A CKKS parameter set is malformed or does not reach its claimed security."""


class EnvelopeError(CipherfaceError):
    """A blob is not a well-formed cipherface envelope (truncated, random, corrupted)."""


class VersionError(EnvelopeError):
    """A blob was written by a wire-format version this cipherface cannot read."""


class WrongKindError(EnvelopeError):
    """A blob is a valid envelope of another kind (e.g. a bundle where a ciphertext was expected)."""


class BackendMismatchError(EnvelopeError):
    """A blob was made by another backend than the one asked to load it."""


class KeyMismatchError(EnvelopeError):
    """A blob was made under another key or parameter set."""


class SecretKeyRequiredError(CipherfaceError):
    """An operation needs the secret key, and this party only holds the public bundle."""


class DimensionError(CipherfaceError):
    """An embedding has the wrong shape, length or values for the operation."""


class UnknownPluginError(CipherfaceError):
    """A backend, embedder or protocol name is not installed."""


class MissingCapabilityError(CipherfaceError):
    """A protocol or operation needs a capability the backend does not declare."""


class DisclosureError(CipherfaceError):
    """A backend would let the matcher see something (e.g. the probe) the user did not accept."""


class DuplicatePluginError(CipherfaceError):
    """Two installed plugins register the same name for the same kind of thing."""


class EmbeddingError(CipherfaceError):
    """A photo could not be turned into an embedding."""


class NoFaceError(EmbeddingError):
    """No face was detected in a photo."""


class ModelWeightsMissingError(EmbeddingError):
    """A face model's weights file is not on disk (cipherface never downloads it)."""


class GalleryError(CipherfaceError):
    """An encrypted gallery cannot be opened or changed as asked."""


class WriteConflictError(GalleryError):
    """Another writer changed a block between the moment it was read and the commit (read it again)."""


class StaleScanError(GalleryError):
    """A scan could not see one committed state of the gallery (it kept changing under it)."""


class RangeError(CipherfaceError):
    """An input is so large that an encrypted result could wrap around (CKKS computes modulo q)."""


class IntegrityError(CipherfaceError):
    """A result, block or slot row cannot be genuine: corrupted, forged, replayed, or under another key."""


class StaleBlockError(IntegrityError):
    """A block is older than the version the key owner last wrote: replayed, unless the gallery
    committed a newer one since it was read (then the reader reads again)."""


class NotFoundError(GalleryError):
    """No such gallery or key here (or not one this tenant may see)."""


class ServiceError(CipherfaceError):
    """The matcher service could not be reached, or answered outside the protocol."""


class AuthenticationError(ServiceError):
    """No bearer token, or one the service does not know."""


class BodyTooLargeError(ServiceError):
    """A request body over the service's limit (HTTP 413)."""


class RequestTimeoutError(ServiceError):
    """A request body that stalled past the service's read timeout (HTTP 408)."""
