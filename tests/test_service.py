"""The matcher as a real service: `cipherface serve` (uvicorn) in a subprocess on a free 127.0.0.1
port, the real client (``RemoteMatcher``, the CLI's --matcher), real photos, real ciphertexts."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_gallery import people, plaintext_top1

from cipherface import KeyOwner, envelope
from cipherface.errors import BodyTooLargeError, IntegrityError, NotFoundError, ServiceError
from cipherface.identification import Identifier
from cipherface.service import RemoteMatcher, frames
from cipherface.service.process import free_port, running, serve_command

TESTS = Path(__file__).resolve().parent
#: The services here take bodies up to 48 MiB (a block of 128 seeded ciphertexts is ~21 MB).
MAX_BODY = 48 * 1024 * 1024


def cli(*args, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "cipherface", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if check:
        assert proc.returncode == 0, f"cipherface {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("matcher-data")
    tokens = {
        t: cli("serve", "token", "create", "--data", str(data), "--tenant", t).stdout.strip() for t in ("acme", "rival")
    }
    command, url = serve_command(data, "--max-body", str(MAX_BODY))
    with running(command, url):
        yield {"url": url, "data": data, "tokens": tokens}


@pytest.fixture(scope="module")
def photos(service, tmp_path_factory, pair_embeddings, faces):
    """A gallery of the shared photos on the service (one photo per person; the others probe it)."""
    _, embedded = pair_embeddings
    label = people(faces)
    enrolled, probes = {}, []
    for photo in sorted(embedded):
        if label[photo] not in enrolled.values():
            enrolled[photo] = label[photo]
        else:
            probes.append(photo)
    keys = tmp_path_factory.mktemp("owner") / "keys"
    remote = RemoteMatcher(service["url"], service["tokens"]["acme"])
    with Identifier.open(
        "photos", keys, create=True, backend="tenseal", metric="cosine", dim=128, matcher=remote
    ) as ident:
        ident.enroll(list(enrolled.values()), [embedded[p] for p in enrolled], progress=False)
    yield {"remote": remote, "keys": keys, "enrolled": enrolled, "probes": probes, "embedded": embedded}
    remote.close()


def test_photos_identified_over_the_wire_equal_plaintext_and_removal(photos):
    remote, embedded, enrolled = photos["remote"], photos["embedded"], photos["enrolled"]
    names = list(enrolled.values())
    matrix = np.array([embedded[p] for p in enrolled])
    with Identifier.open("photos", photos["keys"], matcher=remote) as ident:
        assert ident.gallery.count() == len(enrolled)
        threshold = ident.default_threshold()
        for probe in photos["probes"][:12]:
            result = ident.identify(embedded[probe], top_k=1, threshold=threshold)
            top1, accepted = plaintext_top1("cosine", names, matrix, embedded[probe], threshold)
            assert result.candidates[0].name == top1 and (result.identity is not None) == accepted, probe
        gone = names[0]
        probe = next(p for p in photos["probes"] if people_of(photos, p) == gone)
        ident.remove(gone)
        result = ident.identify(embedded[probe], top_k=3, threshold=threshold)
        assert gone not in [c.name for c in result.candidates]
        assert gone not in ident.names() and ident.gallery.count() == len(enrolled) - 1


def people_of(photos, photo):
    from faces import faces_dir

    return people(faces_dir())[photo]


def test_the_matchers_folder_holds_no_secret_key_and_no_name(service, photos):
    owner = KeyOwner.load(photos["keys"])
    secret = envelope.decode(owner.backend.export_secret_bundle())
    needles = [secret.parts["secret_key"][64:128], owner.backend.integrity_key] + [
        n.encode() for n in photos["enrolled"].values() if len(n) > 6
    ]
    files = [p for p in Path(service["data"]).rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{path} holds key material or a name"
        if path.suffix == ".cfk":
            assert envelope.decode(data).kind == envelope.PUBLIC_BUNDLE


def test_verify_over_the_wire_decides_as_plaintext(service, faces, pair_embeddings, tmp_path):
    pairs, embedded = pair_embeddings
    keys = tmp_path / "k"
    cli("keygen", "--out", str(keys))
    env = {"CIPHERFACE_MATCHER": service["url"], "CIPHERFACE_TOKEN": service["tokens"]["acme"]}
    for pair in [next(p for p in pairs if p.same_person), next(p for p in pairs if not p.same_person)]:
        out = json.loads(
            cli(
                "verify", str(faces / pair.image_a), str(faces / pair.image_b), "--key", str(keys), "--json", env=env
            ).stdout
        )
        a, b = (embedded[pair.image_a], embedded[pair.image_b])
        plain = 1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)
        assert abs(out["distance"] - plain) < 1e-4 and out["verified"] == (plain <= out["threshold"])
    held = list((Path(service["data"]) / "tenants" / "acme" / "keys").iterdir())
    assert [envelope.decode(p.read_bytes()).kind for p in held] == [envelope.PUBLIC_BUNDLE]


def test_cli_enrol_identify_info_remove_through_the_service(service, faces, tmp_path):
    env = {
        "CIPHERFACE_MATCHER": service["url"],
        "CIPHERFACE_TOKEN": service["tokens"]["acme"],
        "CIPHERFACE_HOME": str(tmp_path / "home"),
    }
    made = json.loads(
        cli("enroll", "--gallery", "cli", "--name", "alice", str(faces / "img1.jpg"), "--json", env=env).stdout
    )
    cli("enroll", "--gallery", "cli", "--name", "bob", str(faces / "img3.jpg"), env=env)
    assert Path(made["key_folder"]).parent == Path(os.environ["CIPHERFACE_KEYS"])  # the key owner's side
    out = json.loads(cli("identify", "--gallery", "cli", str(faces / "img2.jpg"), "--json", env=env).stdout)
    assert out["identity"] == "alice" and out["gallery_size"] == 2
    info = json.loads(cli("gallery", "info", "cli", "--json", env=env).stdout)
    assert info["identities"] == 2 and info["path"].endswith("/v1/galleries/cli")
    cli("gallery", "remove", "cli", "--name", "alice", env=env)
    out = json.loads(cli("identify", "--gallery", "cli", str(faces / "img2.jpg"), "--json", env=env).stdout)
    assert out["identity"] is None and out["candidates"][0]["name"] == "bob"


def test_openapi_docs_are_served_offline(service):
    page = httpx.get(f"{service['url']}/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "cdn.jsdelivr" not in page.text and "unpkg.com" not in page.text  # assets come from the package
    spec = httpx.get(f"{service['url']}/openapi.json").json()
    assert "/v1/galleries/{name}/scan" in spec["paths"] and "/v1/keys/{key_id}/distance" in spec["paths"]


def test_another_tenant_sees_nothing_and_touches_nothing(service, photos):
    rival = RemoteMatcher(service["url"], service["tokens"]["rival"])
    assert "photos" not in rival.galleries() and not rival.exists("photos")
    missing = "no gallery named 'photos'"
    for call in (
        lambda: rival.open("photos"),
        lambda: rival.delete("photos"),
        lambda: rival.request("POST", "/v1/galleries/photos/scan", parts=[b"x"]),
        lambda: rival.request("GET", "/v1/galleries/photos/bundle"),
        lambda: rival.request("POST", "/v1/galleries/photos/commit", parts=[frames.header({"writes": []})]),
    ):
        with pytest.raises(NotFoundError, match=missing):
            call()
    assert photos["remote"].exists("photos")  # untouched for its own tenant
    for headers in ({}, {"Authorization": "Bearer cft_not-a-token"}, {"Authorization": "Basic eDp5"}):
        stranger = httpx.get(f"{service['url']}/v1/galleries", headers=headers)
        assert stranger.status_code == 401 and stranger.json()["error"] == "AuthenticationError"
    with pytest.raises(ServiceError, match="bearer token"):
        RemoteMatcher(service["url"], "")


def test_an_oversized_body_is_refused_with_413_and_changes_nothing(service, photos):
    remote = photos["remote"]
    before = remote.open("photos").count()
    with pytest.raises(BodyTooLargeError, match="over this service's limit"):
        remote.request("POST", "/v1/galleries/photos/scan", content=b"\0" * (MAX_BODY + 1), retry=False)
    huge = (b"\0" * (1 << 20) for _ in range(MAX_BODY // (1 << 20) + 2))  # chunked: no length announced
    with pytest.raises(BodyTooLargeError):
        remote.request("POST", "/v1/galleries/photos/commit", content=huge, retry=False)
    endless_json = (b"[" + b'"x",' * (1 << 18) for _ in range(MAX_BODY // (1 << 20) + 2))  # JSON endpoints too
    with pytest.raises(BodyTooLargeError):
        remote.request("POST", "/v1/galleries/photos/locate", content=endless_json, retry=False)
    assert remote.open("photos").count() == before


def test_a_retried_commit_is_not_enrolled_twice(service, tmp_path):
    remote = RemoteMatcher(service["url"], service["tokens"]["acme"])
    sent = []
    request = remote.request

    def recording(method, path, **kwargs):
        if path.endswith("/commit"):
            sent.append(list(kwargs["parts"]))
        return request(method, path, **kwargs)

    remote.request = recording
    rng = np.random.default_rng(5)
    with Identifier.open("retry", tmp_path / "k", create=True, backend="tenseal", dim=16, matcher=remote) as ident:
        ident.enroll(["a", "b"], list(rng.normal(size=(2, 16))), progress=False)
        before = ident.gallery.state()
        assert request("POST", "/v1/galleries/retry/commit", parts=sent[-1]).json() == {"committed": True}
        assert ident.gallery.count() == 2 and ident.gallery.state().slots == before.slots
        assert ident.identify(rng.normal(size=16), top_k=2).candidates  # still consistent
    remote.close()


@pytest.fixture(scope="module")
def two_blocks(tmp_path_factory):
    """A two-block gallery (4,100 random identities) on a service of its own, and its key folder."""
    data = tmp_path_factory.mktemp("two-blocks")
    token = cli("serve", "token", "create", "--data", str(data), "--tenant", "t").stdout.strip()
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(4100, 128))
    keys = tmp_path_factory.mktemp("two-blocks-owner") / "keys"
    command, url = serve_command(data, "--max-body", str(MAX_BODY))
    with running(command, url):
        with (
            RemoteMatcher(url, token) as remote,
            Identifier.open("g", keys, create=True, backend="tenseal", matcher=remote) as ident,
        ):
            ident.enroll([f"p{i}" for i in range(len(vectors))], list(vectors), progress=False)
    return {"data": data, "token": token, "keys": keys, "vectors": vectors}


def gallery_file(setup):
    return setup["data"] / "tenants" / "t" / "galleries" / "g.db"


def identify_through(setup, url, probe):
    with RemoteMatcher(url, setup["token"]) as remote, Identifier.open("g", setup["keys"], matcher=remote) as ident:
        return ident.identify(probe, top_k=1, threshold=0.07)


@pytest.mark.parametrize("mode", ["drop", "forge", "duplicate"])
def test_a_service_that_drops_forges_or_repeats_score_blocks_is_caught(two_blocks, mode):
    port = free_port()
    command = [sys.executable, str(TESTS / "misbehaving_matcher.py"), str(two_blocks["data"]), str(port), mode]
    with running(command, f"http://127.0.0.1:{port}") as url:
        with pytest.raises(IntegrityError, match="dropped|canary|twice|forged"):
            identify_through(two_blocks, url, two_blocks["vectors"][4099])


def test_a_service_that_swaps_blocks_or_serves_a_stale_gallery_is_caught(two_blocks, tmp_path):
    path = gallery_file(two_blocks)
    pristine = tmp_path / "pristine.db"
    shutil.copy(path, pristine)
    vectors = two_blocks["vectors"]
    command, url = serve_command(two_blocks["data"])
    try:
        with running(command, url):
            assert identify_through(two_blocks, url, vectors[4099]).identity == "p4099"
            with (
                RemoteMatcher(url, two_blocks["token"]) as remote,
                Identifier.open("g", two_blocks["keys"], matcher=remote) as ident,
            ):
                ident.remove("p7")  # a newer version of block 0: the copy made before is now stale
        shutil.copy(pristine, path)  # the matcher serves its old copy of the gallery
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        with running(*serve_command(two_blocks["data"])) as url2:
            with pytest.raises(IntegrityError, match="stale"):
                identify_through(two_blocks, url2, vectors[7])
        conn = sqlite3.connect(path)  # then swaps its two blocks, seals and slot rows included
        with conn:
            for table in ("blocks", "seals", "identities"):
                conn.execute(f"UPDATE {table} SET block = -1 WHERE block = 0")
                conn.execute(f"UPDATE {table} SET block = 0 WHERE block = 1")
                conn.execute(f"UPDATE {table} SET block = 1 WHERE block = -1")
        conn.close()
        with running(*serve_command(two_blocks["data"])) as url3:
            with pytest.raises(IntegrityError):
                identify_through(two_blocks, url3, vectors[4099])
    finally:
        shutil.copy(pristine, path)


def test_https_with_a_certificate_the_client_verifies(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    data = tmp_path / "data"
    token = cli("serve", "token", "create", "--data", str(data), "--tenant", "t").stdout.strip()
    command, url = serve_command(data, "--certfile", str(cert_file), "--keyfile", str(key_file))
    url = url.replace("http://", "https://")
    with running(command, url, ca_file=str(ca_file)):
        with RemoteMatcher(url, token, ca_file=str(ca_file)) as remote:
            rng = np.random.default_rng(3)
            v = rng.normal(size=(3, 16))
            with Identifier.open(
                "tls", tmp_path / "k", create=True, backend="tenseal", dim=16, matcher=remote
            ) as ident:
                ident.enroll(["a", "b", "c"], list(v), progress=False)
                assert ident.identify(v[1], top_k=1).identity == "b"
        with RemoteMatcher(url, token) as unverified, pytest.raises(ServiceError, match="cannot reach|CERTIFICATE"):
            unverified.health()  # the system CAs do not vouch for this certificate


def committed(gallery: Path) -> int:
    """Identities committed to a gallery file (read as any SQLite reader may, beside the server)."""
    try:
        with sqlite3.connect(f"file:{gallery}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM identities").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_server_killed_during_enrolment_loses_no_committed_identity(tmp_path):
    """kill -9 of the service while a client enrols batch after batch; after a restart, every name
    the key owner's directory holds is in the gallery and found (= plaintext), and nothing else."""
    import signal
    import threading

    data = tmp_path / "data"
    token = cli("serve", "token", "create", "--data", str(data), "--tenant", "t").stdout.strip()
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(3000, 32))
    keys = tmp_path / "keys"
    command, url = serve_command(data)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failures = []

    def enrol() -> None:
        try:
            with RemoteMatcher(url, token) as remote:
                for _ in range(100):  # until the service dies (bounded)
                    try:
                        if remote.health():
                            break
                    except ServiceError:
                        time.sleep(0.2)
                with Identifier.open("g", keys, create=True, backend="tenseal", dim=32, matcher=remote) as ident:
                    for start in range(0, len(vectors), 100):
                        names = [f"p{i}" for i in range(start, start + 100)]
                        ident.enroll(names, list(vectors[start : start + 100]), progress=False)
        except ServiceError as exc:
            failures.append(exc)

    worker = threading.Thread(target=enrol)
    worker.start()
    try:
        gallery, deadline = data / "tenants" / "t" / "galleries" / "g.db", time.monotonic() + 180
        while time.monotonic() < deadline and committed(gallery) < 200:  # two batches in, the next in flight
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        worker.join(120)
        assert failures, "the enrolling client should have seen the service die"
    finally:
        if proc.poll() is None:
            proc.kill()
    with running(*serve_command(data)) as url2, RemoteMatcher(url2, token) as remote:
        with Identifier.open("g", keys, matcher=remote) as ident:
            names = ident.names()
            assert 0 < len(names) < len(vectors) and ident.gallery.count() == len(names)
            for name in list(names)[:: max(1, len(names) // 8)]:
                i = int(name[1:])
                assert ident.identify(vectors[i], top_k=1).identity == name
            ident.enroll(["late"], [vectors[-1]], progress=False)  # and it takes new enrolments
            assert ident.identify(vectors[-1], top_k=1).identity == "late"


def test_state_changes_travel_as_deltas_that_merge_into_the_full_state(service, tmp_path):
    remote = RemoteMatcher(service["url"], service["tokens"]["acme"])
    rng = np.random.default_rng(4)
    with Identifier.open("delta", tmp_path / "k", create=True, backend="tenseal", dim=8, matcher=remote) as ident:
        ident.enroll(["a", "b"], list(rng.normal(size=(2, 8))), progress=False)
        held = ident.gallery.state()
        path = "/v1/galleries/delta/state"
        assert remote.request("GET", path, params={"since": held.generation}).json()["unchanged"]
        ident.enroll(["c"], list(rng.normal(size=(1, 8))), progress=False)
        delta = remote.request("GET", path, params={"since": held.generation}).json()
        assert delta["since"] == held.generation and delta["blocks"] == [0]
        assert "slots" in remote.request("GET", path, params={"since": 10**9}).json()  # unknown: the whole state
        assert ident.gallery.state() == remote.open("delta").state()  # merged == fetched whole
        assert ident.identify(rng.normal(size=8), top_k=3).candidates
    remote.close()


def test_a_stalled_request_body_times_out_with_408(tmp_path):
    import socket

    data = tmp_path / "data"
    token = cli("serve", "token", "create", "--data", str(data), "--tenant", "t").stdout.strip()
    command, url = serve_command(data, "--read-timeout", "1")
    with running(command, url):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(
                b"POST /v1/galleries/g/scan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                + b"\r\nContent-Length: 1000\r\n\r\n" + b"\0" * 10
            )  # fmt: skip
            answer = b""  # then nothing more is sent: the service answers by itself
            while b"}" not in answer and (chunk := conn.recv(4096)):
                answer += chunk
        answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408") and "RequestTimeoutError" in answer


def test_malformed_requests_get_json_errors_the_client_raises(service, photos):
    from cipherface.errors import EnvelopeError

    remote = photos["remote"]
    before = remote.open("photos").count()
    with pytest.raises(ServiceError, match="malformed request"):
        remote.request("POST", "/v1/galleries/photos/locate", json={"not": "a list"})
    with pytest.raises(ServiceError, match="Not Found"):
        remote.request("GET", "/v1/no-such-thing")
    with pytest.raises(EnvelopeError, match="not JSON"):
        remote.request("POST", "/v1/galleries/photos/commit", parts=[b"\xff garbage"])
    with pytest.raises(EnvelopeError, match="ends inside a frame"):
        remote.request("POST", "/v1/galleries/photos/scan", content=b"\0\0\0\0\0\0\0\x09abc")
    assert remote.open("photos").count() == before
