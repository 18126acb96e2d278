"""Where refstack's services come from: native private processes or containers, behind one interface.

Tests, ``make up`` and a person at a terminal break things with the same verbs (see notes/docker.md).
Nothing here imports ``app``; the app is started as a process like every other service.
"""
