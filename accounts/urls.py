from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("invite/<str:code>/", views.invite_accept, name="invite_accept"),
    path("invites/", views.invites, name="invites"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    path("sessions/<int:session_id>/end/", views.session_end, name="session_end"),
]
