from django.contrib import admin
from django.urls import include, path

from config import views
from inference.api import api

urlpatterns = [
    path("", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/inference/", include("inference.compat.urls")),
    path("api/", api.urls),
    path("usage/", include("usage.urls")),
    path("games/", include("games.urls")),
    path("healthz", views.healthz, name="healthz"),
]

handler400 = "config.views.bad_request"
handler403 = "config.views.permission_denied"
handler404 = "config.views.page_not_found"
handler500 = "config.views.server_error"
