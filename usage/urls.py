from django.urls import path

from usage import views

app_name = "usage"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("all/", views.all_users, name="all_users"),
    path("all.csv", views.all_users_csv, name="all_users_csv"),
]
