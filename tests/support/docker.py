"""Docker Engine, base image and registry fixtures (filled in by the build work)."""
