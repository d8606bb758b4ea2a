"""``ganforge lab``: a toy GAN trained live, with the course's theory drawn as it happens.

``session.py`` owns the GAN (ganforge's own config, nets and step) and what the page shows;
``views.py`` holds the pure maths of the pictures; ``server.py`` serves the page (``static/``)
and its JSON API on 127.0.0.1 only.
"""
