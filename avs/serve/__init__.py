"""``avs serve``: a local web page for interactive search, topic inspection and run comparison, with its JSON
API (FastAPI). Needs the ``serve`` extra (``pip install 'avs[serve]'``). :class:`~avs.serve.session.ServeSession`
computes what is shown; :func:`avs.serve.app.create_app` routes requests to it."""
