"""What a user runs on top of the Python API (:mod:`udarts.experiment`): comparisons
(:mod:`udarts.app.compare`: plan, results, render, and ``run`` that trains them), run reports
(:mod:`udarts.app.report`), prediction on image files (:mod:`udarts.app.predict`), model export
(:mod:`udarts.app.export`), the demo (:mod:`udarts.app.demo`), genotype files from a search or at
random (:mod:`udarts.app.genotypes`) and the eval table (:mod:`udarts.app.evaluation`).

Nothing below this layer (engine, experiment) imports it.
"""
