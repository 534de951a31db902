"""The training app's pages and JSON API, one module per concern; training/urls.py and config/urls.py route
to them. Label Studio's ML backend endpoints are training/labelstudio_views.py (routed by
training/labelstudio_urls.py)."""
