"""The model and the index, loaded when a web or worker process starts, so no page waits for them.

Each gunicorn worker (gunicorn.conf.py, `post_worker_init`) and each Celery pool process
(apps/celery.py, `worker_process_init`) starts `start_warm_up()`: a background thread loads the
sentence model and its ONNX query model (exported on a machine's first boot), the index and what
scoring derives from it, while the process already serves. Until it is done, and while a newer
index is loaded after a rebuild, a page that needs a ranking is answered as by any cold process:
a worker computes it and the page polls (`ready_to_rank`). Not at Django start-up
(AppConfig.ready): every `manage.py` command and every test process would pay seconds of CPU and
hundreds of MB for a model most never use; the server hooks run only in serving processes.
FLOWDECK_KNOWLEDGE_WARMUP=0 leaves the loading to the first query.

What was loaded is then frozen out of the garbage collector's sight (`gc.freeze`): on 100,000
incidents it is some 600,000 objects that live as long as the process, and each full collection
walked them all (~330 ms), which a random request paid (the pages bench's 400–800 ms outliers).
"""

import gc
import logging
import threading
import time

from django.conf import settings
from django.db import connections

from apps.knowledge.embedding import encode_query, encoder_loaded
from apps.knowledge.indexing import reader

logger = logging.getLogger("flowdeck.knowledge")
SAMPLE_QUERY = "warm-up: connection refused while loading the nightly extract"

_state = {"started": False, "done": False, "seconds": None, "reloading": False}
_lock = threading.Lock()


def warm_up() -> float:
    """Load the model, the query model and the index into this process; seconds it took."""
    from apps.knowledge.suggest import evidence_context

    began = time.monotonic()
    try:
        encode_query(SAMPLE_QUERY)  # the model, and the ONNX session queries use
        index = reader().get()
        if len(index):
            evidence_context(index)  # centroids and candidates over every incident
    finally:
        connections.close_all()  # this thread's own connection (the label names)
    return time.monotonic() - began


def start_warm_up(on_done=None) -> threading.Thread | None:
    """Start loading in the background, once per process (None: off, or already started);
    `on_done(seconds)` after (the server's own log says when each worker is ready)."""
    with _lock:
        if not settings.FLOWDECK_KNOWLEDGE_WARMUP or _state["started"]:
            return None
        _state["started"] = True
    thread = threading.Thread(target=_warm_up_logged, args=(on_done,), name="knowledge-warm-up", daemon=True)
    thread.start()
    return thread


def _freeze_loaded() -> None:
    """Collect once, then move every object alive (the model, the index) to the permanent
    generation, which collections skip. Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def _warm_up_logged(on_done) -> None:
    try:
        seconds = warm_up()
        _freeze_loaded()
    except Exception:  # noqa: BLE001  (a page then loads what it needs, as without the warm-up)
        logger.exception("knowledge warm-up failed; the first query will load the model")
        seconds = None
    _state.update(done=True, seconds=seconds)
    if seconds is not None:
        logger.info("knowledge warm-up done in %.1f s", seconds)
        if on_done is not None:
            on_done(seconds)


def status() -> dict:
    return dict(_state)


def ready_to_rank() -> bool:
    """Whether this process can rank a failure now without waiting for a load. In a process that
    warms up: once it has, with the newest index in memory (a newer one is loaded in the
    background meanwhile). Elsewhere (a shell, a test): whenever the model is loaded, as before."""
    if not encoder_loaded() or (_state["started"] and not _state["done"]):
        return False
    if not _state["started"] or reader().is_current():
        return True
    _reload_in_background()
    return False


def _reload_in_background() -> None:
    with _lock:
        if _state["reloading"]:
            return
        _state["reloading"] = True

    def reload():
        try:
            gc.unfreeze()  # the index replaced must be collectable once its last reader is done
            warm_up()
            _freeze_loaded()
        except Exception:  # noqa: BLE001
            logger.exception("knowledge index reload failed; the next query loads it")
        finally:
            _state["reloading"] = False

    threading.Thread(target=reload, name="knowledge-index-reload", daemon=True).start()
