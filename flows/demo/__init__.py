"""The Gradio demo: per-session 3-D viewers (viser), downloads, local files confined to one folder."""
