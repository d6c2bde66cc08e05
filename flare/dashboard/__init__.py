"""``flare dashboard``: a web page that follows one task as it runs.

:mod:`flare.dashboard.watch` reads the task from the chain and the blob store into one
JSON-ready snapshot (rounds, committees, votes, flags, bytes, gas, verification);
:mod:`flare.dashboard.server` serves it and the page (:mod:`flare.dashboard.page`) that
polls it. The server needs the optional extra ``flare[dashboard]`` (aiohttp).
"""
