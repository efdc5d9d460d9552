from django.contrib import admin
from django.urls import include, path

from config import views
from inference.api import api

# The API first: it carries most requests, and each pattern tried before the
# one that matches costs a regular expression and a note of what was tried.
urlpatterns = [
    path("api/", api.urls),
    path("api/inference/", include("inference.compat.urls")),
    path("", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("usage/", include("usage.urls")),
    path("games/", include("games.urls")),
    path("healthz", views.healthz, name="healthz"),
]

handler400 = "config.views.bad_request"
handler403 = "config.views.permission_denied"
handler404 = "config.views.page_not_found"
handler500 = "config.views.server_error"
