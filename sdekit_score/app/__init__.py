"""The application on top of the library: the main job (demo) with its configuration and
acceptance check, and PNG plotting. Used by the ``sdekit-score`` CLI; not imported by
``import sdekit_score``."""
