"""The native provider: every service as a private process on loopback, started from Debian's binaries.

See notes/docker.md ("How the native provider stands in for compose") and /work/shared/STACK_RECIPE.md.
"""
