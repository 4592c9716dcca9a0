"""Container images of releases: the Dockerfile, the build context and the wheelhouse."""
