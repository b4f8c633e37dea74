import hashlib
import io
import json
import os
import secrets
import struct
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax


_MAGIC = b"LRCKPT01"
_DIGEST = 32  # sha256

# A test hook, called as hook(path, stage) half-way through writing the temporary
# file (stage "partial") and, with `keep_previous`, between moving the old file
# aside and moving the new one in (stage "rotated"). The crash-safety tests make it
# sleep or raise there, and kill the process.
_crash_test_hook: Callable[[str, str], None] | None = None


class CheckpointError(Exception):
    """A checkpoint file is missing, truncated, corrupted or does not match the
    model it is loaded into. The message names the file."""


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, *, keep_previous: str | None = None
) -> None:
    """Write `data` to `path` so that `path` holds either its old content or the
    complete new content, whatever happens: write a temporary file in the same
    directory, fsync it, `os.replace` it onto `path`, fsync the directory.

    With `keep_previous`, the old file is first renamed to that path (once the new
    one is complete), so the last two versions are kept.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(
        directory, f"{os.path.basename(path)}.{secrets.token_hex(6)}.tmp"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            if _crash_test_hook is not None:
                f.flush()
                _crash_test_hook(path, "partial")
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and os.path.exists(path):
            os.replace(path, keep_previous)
            if _crash_test_hook is not None:
                _crash_test_hook(path, "rotated")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """[`atomic_write_bytes`][] for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_checkpoint(tree: Any, metadata: dict) -> bytes:
    """Serialise the arrays of `tree` (with `eqx.tree_serialise_leaves`: no pickle)
    and a JSON `metadata` header into one self-checking blob:
    `magic | header length | header JSON | payload | sha256 of all before`."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    payload = buffer.getvalue()
    header = json.dumps(
        {"metadata": metadata, "payload_bytes": len(payload)}, sort_keys=True
    ).encode("utf-8")
    body = _MAGIC + struct.pack("<Q", len(header)) + header + payload
    return body + hashlib.sha256(body).digest()


def save_checkpoint(
    path: str | os.PathLike,
    tree: Any,
    metadata: dict,
    *,
    keep_previous: str | os.PathLike | None = None,
) -> None:
    """Atomically write a checkpoint of the PyTree `tree` (e.g. a model, or a model
    and its optimiser state) with a JSON-serialisable `metadata` dict.

    The file carries a SHA-256 checksum that
    [`load_checkpoint`][lrc_toolkit.training.load_checkpoint] verifies. The file at
    `path` is replaced only once the new one is complete and on disk.

    **Arguments:**

    - `path`: the file to write.
    - `tree`: any PyTree of arrays (non-array leaves are not stored).
    - `metadata`: a JSON-serialisable dict (configuration, counters...).
    - `keep_previous`: if given, the file previously at `path` is moved there (after
        the new one is complete) instead of being discarded.
    """
    if keep_previous is not None:
        keep_previous = os.fspath(keep_previous)
    atomic_write_bytes(
        path, encode_checkpoint(tree, metadata), keep_previous=keep_previous
    )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, bytes]:
    """Read and verify a checkpoint file; return its metadata and raw payload.

    **Raises:** [`CheckpointError`][lrc_toolkit.training.CheckpointError] naming the
    file if it is missing, truncated or corrupted.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"Checkpoint {path!r} does not exist.") from None
    except OSError as e:
        raise CheckpointError(f"Checkpoint {path!r} cannot be read: {e}.") from None
    if not data.startswith(_MAGIC):
        raise CheckpointError(
            f"{path!r} is not an lrc_toolkit checkpoint (bad magic bytes; the file is "
            "corrupted or of another format)."
        )
    if len(data) < len(_MAGIC) + 8 + _DIGEST:
        raise CheckpointError(f"Checkpoint {path!r} is truncated ({len(data)} bytes).")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(
            f"Checkpoint {path!r} is truncated or corrupted: its SHA-256 checksum does "
            f"not match ({len(data)} bytes on disk). Use the previous checkpoint (e.g. "
            "'prev.eqx' next to 'last.eqx') or retrain."
        )
    (n,) = struct.unpack("<Q", body[len(_MAGIC) : len(_MAGIC) + 8])
    start = len(_MAGIC) + 8
    try:
        header = json.loads(body[start : start + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"Checkpoint {path!r} has a bad header: {e}.") from None
    payload = body[start + n :]
    if len(payload) != header.get("payload_bytes"):
        raise CheckpointError(f"Checkpoint {path!r} has a payload of the wrong size.")
    return header["metadata"], payload


def deserialise(path: str | os.PathLike, payload: bytes, like: Any) -> Any:
    """Load the arrays of a payload into a PyTree shaped like `like`."""
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as e:
        shapes = jax.tree.map(lambda a: getattr(a, "shape", a), like)
        raise CheckpointError(
            f"Checkpoint {os.fspath(path)!r} does not match the structure it is loaded "
            f"into ({type(e).__name__}: {e}). Build the model with the same "
            f"configuration as when it was saved (expected leaves like {shapes})."
        ) from None
