"""Packed encrypted gallery for 1:N identification, persisted in SQLite."""

from cipherface.gallery.directory import Directory
from cipherface.gallery.encrypted_gallery import EncryptedGallery
from cipherface.gallery.packing import STORAGE_DEPTH, decrypt_scores, encrypt_probe

__all__ = ["STORAGE_DEPTH", "Directory", "EncryptedGallery", "decrypt_scores", "encrypt_probe"]
