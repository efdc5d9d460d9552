from django.urls import path

from inference.consumers import InferenceConsumer

websocket_urlpatterns = [
    path("ws/inference/", InferenceConsumer.as_asgi()),
]
