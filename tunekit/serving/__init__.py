"""Serving exported models over HTTP: TF Serving REST and KServe v2, micro-batched, authenticated, monitored.

Needs the `serve` extra (`pip install "tunekit[serve]"`). From the command line:
`tunekit serve EXPORT_DIR --name NAME --port PORT` (see docs/serving.md); embedded in Python:

>>> import pathlib
>>> from tunekit.serving import create_app, load_api_keys
>>> _ = pathlib.Path("api_keys.txt").write_text("k1-0123456789abcdef")    # one key a line; or $TUNEKIT_API_KEYS
>>> app = create_app({"imdb": artifact_dir}, api_keys=load_api_keys("api_keys.txt"))   # e.g. "exports/imdb"

This package imports no server dependency until `create_app` is called.
"""

from tunekit.serving.auth import API_KEYS_ENV, load_api_keys
from tunekit.serving.protocols import Limits


def create_app(models, **kwargs):
    """The serving ASGI app; see `tunekit.serving.app.create_app` for the arguments."""
    require_serve_extra()
    from tunekit.serving.app import create_app as _create_app

    return _create_app(models, **kwargs)


def require_serve_extra():
    """Raises an ImportError naming the extra if starlette, uvicorn or prometheus-client is missing."""
    import importlib.util

    missing = [name for name in ("starlette", "uvicorn", "prometheus_client") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"Serving needs {', '.join(missing)}: pip install \"tunekit[serve]\"")


__all__ = ["API_KEYS_ENV", "Limits", "create_app", "load_api_keys", "require_serve_extra"]
