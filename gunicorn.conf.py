"""gunicorn settings read from the project directory (Procfile, bench.pages): each worker loads the
knowledge model and index in the background once the application is loaded (apps/knowledge/warmup.py),
so no page waits for them. Command-line options still apply on top."""


def post_worker_init(worker):
    from apps.knowledge.warmup import start_warm_up

    start_warm_up(on_done=lambda seconds: worker.log.info("knowledge warm-up done in %.1f s", seconds))
