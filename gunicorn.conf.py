"""gunicorn settings read from the project directory (Procfile, bench.pages): each worker loads the
knowledge model and index in the background once the application is loaded (apps/knowledge/warmup.py),
so no page waits for them. Command-line options still apply on top.

What a worker loads at start lives as long as it does, so it is frozen out of the garbage collector's
sight (`gc.freeze`): a full collection otherwise walked the loaded index every few requests and
paused the page that triggered it 300-400 ms (home's p95 at 10M step runs, `bench pages`)."""

import gc


def post_worker_init(worker):
    from apps.knowledge.warmup import start_warm_up

    gc.freeze()  # Django and the application

    def warmed_up(seconds):
        gc.freeze()  # the model and the index
        worker.log.info("knowledge warm-up done in %.1f s", seconds)

    start_warm_up(on_done=warmed_up)
