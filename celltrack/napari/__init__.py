"""celltrack in napari: annotate, train live, proofread, link and export in the viewer.

Install with ``pip install "celltrack[napari]"``; napari then lists *celltrack* under
Plugins. The plugin is built on :class:`~celltrack.project.Project` alone:

- :mod:`celltrack.napari.layers`: what the layers show (pure arrays, no Qt);
- :mod:`celltrack.napari.session`: the layers of one project and the edits made in them;
- :mod:`celltrack.napari.jobs`: training, prediction and linking in a background thread;
- :mod:`celltrack.napari.widget`: the dock widget;
- :mod:`celltrack.napari.sample`: a synthetic 3D+t embryo as napari sample data.

The core library never imports this package, so it installs and runs without napari or Qt.
"""

from celltrack.errors import DependencyError

try:  # the plugin needs napari and a Qt binding; say how to get them
    import napari  # noqa: F401
    import qtpy  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise DependencyError(
        f"the celltrack napari plugin needs napari and Qt ({err}): "
        'pip install "celltrack[napari]"'
    ) from err
