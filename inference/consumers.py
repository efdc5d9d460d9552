from channels.generic.websocket import AsyncJsonWebsocketConsumer


class InferenceConsumer(AsyncJsonWebsocketConsumer):
    pass
