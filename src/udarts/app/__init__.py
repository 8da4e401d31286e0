"""The application features built on the training and search loops of :mod:`udarts.engine`, such
as comparisons (:mod:`udarts.app.compare`), run reports (:mod:`udarts.app.report`), prediction on
image files (:mod:`udarts.app.predict`) and model export (:mod:`udarts.app.export`).

Nothing in :mod:`udarts.engine` imports this package.
"""
