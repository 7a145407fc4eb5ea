"""Atomic writes: a crash never leaves a half-written file under the real name.

Each helper writes to a temporary name in the destination folder, flushes it
to disk, then renames it into place with `os.replace` (atomic on POSIX and
Windows when both names are on one file system).
"""

import json
import os
import shutil
import tempfile


def write_atomically(path, write, suffix=".tmp"):
    """Calls `write(tmp)` with a temporary file name next to `path`, then
    renames that file to `path`. `suffix` ends the temporary name, for
    writers that pick the format from it (`.keras`, `.png`).

    Example:
    >>> write_atomically("figure.png", lambda tmp: fig.savefig(tmp), suffix=".png")
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.tmp.", suffix=suffix, dir=folder
    )
    os.close(handle)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # `mkstemp` makes the file private (0600); give it the permissions
        # a plain `open(path, "w")` would have.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def current_umask():
    """The process's umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomically(path, data):
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    write_atomically(path, write)


def write_text_atomically(path, text):
    write_bytes_atomically(path, text.encode("utf-8"))


def write_json_atomically(path, obj):
    write_text_atomically(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_model_atomically(model, path):
    """`model.save(path)` through a temporary `.keras` file and a rename."""
    # Keras picks the format from the suffix, so the temporary name keeps it.
    write_atomically(path, model.save, suffix=".keras")


def write_folder_atomically(path, write):
    """Calls `write(tmp_folder)`, then puts the folder at `path` by renames.

    A folder cannot replace another in one atomic step, so an existing one
    is first renamed aside and removed only after the new one is in place:
    at every moment one complete folder exists (under `path`, or under the
    aside name if the process dies between the two renames).
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp.", dir=parent)
    aside = None
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~current_umask())
        if os.path.exists(path):
            aside = tempfile.mkdtemp(prefix=f".{name}.old.", dir=parent)
            os.rmdir(aside)
            os.replace(path, aside)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        if aside and os.path.exists(aside):
            if os.path.exists(path):
                shutil.rmtree(aside)
            else:  # the new folder did not arrive: put the old one back
                os.replace(aside, path)


def read_json(path, what):
    """Reads a JSON file, with an error that says which file and what it is."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path!r} does not exist.")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{what} {path!r} is not valid JSON ({error}); the file is "
            "damaged. Re-create it (re-run the command that wrote it)."
        ) from None
