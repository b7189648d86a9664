"""Teaching labs with automatic grading (issue 13): ``python -m labs start|check|solve NN``.

Each lab (``labs/NN-name/``) has a handout, a settings file (its starting state), an answers template
and a module here (``labs/labNN.py``) with its variant and tasks; :mod:`labs.grading` marks the tasks from
the run folder alone (:mod:`labs.runview`).
"""
