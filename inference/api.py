from ninja import NinjaAPI

api = NinjaAPI(title="Vanilla Game Platform API", version="1", urls_namespace="api")
