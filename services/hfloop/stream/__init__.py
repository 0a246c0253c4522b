"""Stream processors: join outcomes and feedback to interactions, derive labels, preference
pairs and memory updates, dead-letter what cannot be processed (faust-streaming).

``logic.py`` and ``pairs.py`` hold the policies, ``state.py`` the join and group state
machines (all pure); ``app.py`` wires them into a faust app; ``service.py`` runs it.
"""
