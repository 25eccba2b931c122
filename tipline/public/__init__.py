"""The public surface: all that an informant, and Zalo on their behalf, can reach.

- :mod:`tipline.public.webhook`: ``POST /zalo/webhook``, Zalo OA events, signed.
- :mod:`tipline.public.web_form`: ``/bao-tin`` and ``/tra-cuu``, the anonymous web form.

Nothing here needs a login and nothing here imports the staff UI (:mod:`triage`).
"""
