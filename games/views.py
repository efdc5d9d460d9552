"""Game pages: the list, publishing, the play page and the game's own files."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from games import selectors, services
from games.forms import GameForm
from games.models import Game
from games.storage import game_file_path
from games.validation import GamePackageError
from usage.clock import usage_day

# What a game may do inside its frame: run its own scripts and load its own
# files, nothing else. No network (the SDK talks to the play page by
# postMessage), no forms, no navigating the player's page.
GAME_CSP = "; ".join(
    [
        "sandbox allow-scripts",
        "default-src 'self' 'unsafe-inline' data: blob:",
        "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval' blob:",
        "connect-src 'none'",
        "form-action 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".bin": "application/octet-stream",
}
# Files reached through the session URL are short-lived in caches (a new
# version keeps their names); the play page's run URL changes with every
# version, so its files may be kept for a day.
FILE_MAX_AGE_S = 60
RUN_FILE_MAX_AGE_S = 24 * 3600
RUN_KEY_SALT = "games.run-key"
RUN_KEY_DAYS = 2


@login_required
@require_GET
def game_list(request: HttpRequest) -> HttpResponse:
    games = list(selectors.games_visible_to(user=request.user))
    usage = selectors.game_usage_by_game(user=request.user, games=games)
    rows = [(game, usage.get(game.pk, selectors.GameUsage())) for game in games]
    return render(
        request,
        "games/list.html",
        {"rows": rows, "may_publish": request.user.has_perm("games.publish_game")},
    )


@login_required
@permission_required("games.publish_game", raise_exception=True)
@require_http_methods(["GET", "POST"])
def game_publish(request: HttpRequest) -> HttpResponse:
    form = GameForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            game = services.game_create(
                slug=form.cleaned_data["slug"],
                owner=request.user,
                package=form.package,
                players=list(form.cleaned_data["players"]),
                **form.game_fields(),
            )
        except GamePackageError as exc:
            # Found only while unpacking (a member holding more than its header
            # says): the game and its files are gone again; say why.
            form.add_error("package", str(exc))
        else:
            messages.success(request, f"“{game.title}” is published.")
            return redirect(game)
    return render(request, "games/publish.html", {"form": form, "game": None})


@login_required
@require_http_methods(["GET", "POST"])
def game_edit(request: HttpRequest, slug: str) -> HttpResponse:
    game = selectors.game_get_playable(user=request.user, slug=slug)
    if not selectors.game_may_edit(user=request.user, game=game):
        raise PermissionDenied("Only the game's owner can change it.")
    form = GameForm(request.POST or None, request.FILES or None, instance=game, user=game.owner)
    if request.method == "POST" and form.is_valid():
        try:
            services.game_update(
                game=game,
                package=form.package,
                players=list(form.cleaned_data["players"]),
                **form.game_fields(),
            )
        except GamePackageError as exc:  # found while unpacking; the old files stay live
            form.add_error("package", str(exc))
        else:
            messages.success(request, f"“{game.title}” is updated (version {game.version}).")
            return redirect(game)
    return render(request, "games/publish.html", {"form": form, "game": game})


def _run_key(*, user: User, game: Game) -> str:
    value = f"{user.pk}-{game.pk}-{game.version}-{usage_day().toordinal()}"
    return signing.Signer(salt=RUN_KEY_SALT).sign(value)


def _run_key_user(key: str, slug: str) -> User:
    """The player a run key was made for; Http404 when it is forged or stale."""
    try:
        user_id, game_id, _version, day = signing.Signer(salt=RUN_KEY_SALT).unsign(key).split("-")
    except (signing.BadSignature, ValueError):
        raise Http404("No such game.") from None
    if int(day) < usage_day().toordinal() - RUN_KEY_DAYS:
        raise Http404("No such game.")
    user = User.objects.filter(pk=int(user_id), is_active=True).first()
    if user is None or not Game.objects.filter(pk=int(game_id), slug=slug).exists():
        raise Http404("No such game.")
    return user


@never_cache
@login_required
@require_GET
def game_play(request: HttpRequest, slug: str) -> HttpResponse:
    game = selectors.game_get_playable(user=request.user, slug=slug)
    token = services.game_session_token_create(user=request.user, game=game)
    frame_url = reverse(
        "games:run_file",
        kwargs={
            "slug": game.slug,
            "key": _run_key(user=request.user, game=game),
            "path": "index.html",
        },
    )
    bridge = {
        "token": token,
        "game": game.slug,
        "apiBase": "/api/inference",
        "websocketPath": "/ws/inference/",
        "defaultModel": game.default_model,
        "expiresInS": settings.GAME_TOKEN_LIFETIME_S,
        "renewUrl": reverse("games:session_token", kwargs={"slug": game.slug}),
    }
    return render(
        request,
        "games/play.html",
        {
            "game": game,
            "frame_url": f"{frame_url}?v={game.version}",
            "bridge": bridge,
            "usage": selectors.game_usage(user=request.user, game=game),
            "may_edit": selectors.game_may_edit(user=request.user, game=game),
        },
    )


@never_cache
@login_required
@require_POST
def game_session_token(request: HttpRequest, slug: str) -> JsonResponse:
    """A fresh game token for a play page that has been open for a long time."""
    game = selectors.game_get_playable(user=request.user, slug=slug)
    token = services.game_session_token_create(user=request.user, game=game)
    return JsonResponse({"token": token, "expires_in": settings.GAME_TOKEN_LIFETIME_S})


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _serve(request: HttpRequest, game: Game, path: str, *, max_age: int) -> HttpResponse:
    file = game_file_path(game.slug, path)
    if file is None:
        raise Http404("No such file in this game.")
    info = file.stat()
    tag = hashlib.sha256(f"{game.version}:{path}:{info.st_size}:{info.st_mtime_ns}".encode())
    etag = f'"{tag.hexdigest()[:32]}"'
    if_none_match = request.headers.get("If-None-Match")
    since = parse_http_date_safe(request.headers.get("If-Modified-Since") or "")
    if if_none_match is not None:
        fresh = etag in [value.strip() for value in if_none_match.split(",")] or (
            if_none_match.strip() == "*"
        )
    else:
        fresh = since is not None and int(info.st_mtime) <= since
    if fresh:
        response: HttpResponse = HttpResponseNotModified()
    else:
        # FileResponse closes the file once it has been sent.
        handle = open(file, "rb")  # noqa: SIM115
        response = FileResponse(handle, content_type=_content_type(file))
        response["Content-Length"] = str(info.st_size)
    response["ETag"] = etag
    response["Last-Modified"] = http_date(info.st_mtime)
    response["Cache-Control"] = f"private, max-age={max_age}"
    response["Content-Security-Policy"] = GAME_CSP
    response["X-Content-Type-Options"] = "nosniff"
    # The game's own documents should not tell other sites where the player was.
    response["Referrer-Policy"] = "no-referrer"
    # Everything else on the site refuses to be framed (X_FRAME_OPTIONS=DENY);
    # a game's files exist to be framed by its play page on this origin.
    response["X-Frame-Options"] = "SAMEORIGIN"
    return response


@login_required
@require_GET
def game_file(request: HttpRequest, slug: str, path: str) -> HttpResponse:
    game = selectors.game_get_playable(user=request.user, slug=slug)
    return _serve(request, game, path, max_age=FILE_MAX_AGE_S)


@require_GET
def game_run_file(request: HttpRequest, slug: str, key: str, path: str) -> HttpResponse:
    """The game's files as loaded inside the play page's sandboxed frame.

    Requests from the sandboxed frame come from an opaque origin, so browsers
    send them without the session cookie (it is SameSite=Lax). The signed key
    in the path stands in for it: it names the player, is re-checked against
    the game's visibility on every request, and goes stale after a day or two.
    """
    user = _run_key_user(key, slug)
    game = selectors.game_get_playable(user=user, slug=slug)
    response = _serve(request, game, path, max_age=RUN_FILE_MAX_AGE_S)
    # Module scripts from an opaque origin are fetched in CORS mode.
    response["Access-Control-Allow-Origin"] = "*"
    return response
