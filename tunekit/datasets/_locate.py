"""Finding a dataset's files under a user-given `data_dir`, with errors that say what is missing."""

from __future__ import annotations

from pathlib import Path


def find_data_file(data_dir, *, file_names: tuple[str, ...], folder_names: tuple[str, ...], dataset: str,
                   how_to_get: str) -> Path:
    """The first of `file_names` found in `data_dir` or in one of its sub-folders `folder_names`.

    So `data_dir` may be the dataset's own folder (e.g. GLUE's `SST-2/`) or a folder above it.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset}: data_dir {str(root)!r} is not a folder. {how_to_get}")
    folders = [root, *(root / name for name in folder_names)]
    for folder in folders:
        for name in file_names:
            if (folder / name).is_file():
                return folder / name
    searched = ", ".join(str(folder) for folder in folders)
    raise FileNotFoundError(f"{dataset}: found none of {list(file_names)} in {searched}. {how_to_get}")
