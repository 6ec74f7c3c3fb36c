"""ServerTech Sentry3 (Sentry Switched/Smart CDU, CW/CX series): see README.md."""
