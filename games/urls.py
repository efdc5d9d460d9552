from django.urls import path

from games import views

app_name = "games"

urlpatterns = [
    path("", views.game_list, name="list"),
    path("publish/", views.game_publish, name="publish"),
    path("<slug:slug>/", views.game_play, name="play"),
    path("<slug:slug>/edit/", views.game_edit, name="edit"),
    path("<slug:slug>/session-token", views.game_session_token, name="session_token"),
    path("<slug:slug>/files/<path:path>", views.game_file, name="file"),
    path("<slug:slug>/run/<str:key>/<path:path>", views.game_run_file, name="run_file"),
]
