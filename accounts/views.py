from __future__ import annotations

from allauth.usersessions.adapter import get_adapter as get_usersessions_adapter
from allauth.usersessions.models import UserSession
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import (
    ApiTokenCreateForm,
    InviteAcceptForm,
    InviteCreateForm,
    StaffInviteCreateForm,
)
from accounts.models import Invite
from accounts.selectors import (
    api_token_get_for_owner,
    api_token_list_for_user,
    api_token_status,
    invite_get_by_code,
    invite_list_for_user,
    invite_status,
    user_may_invite,
)
from accounts.services import (
    InviteNotValid,
    NoInvitesLeft,
    api_token_create,
    api_token_revoke,
    invite_create,
    invite_redeem,
)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def _invite_gone(request: HttpRequest, invite: Invite) -> HttpResponse:
    reason = "expired" if invite.is_expired else "used_up"
    return render(request, "accounts/invite_invalid.html", {"reason": reason}, status=410)


@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, code: str) -> HttpResponse:
    invite = invite_get_by_code(code=code)
    if invite is None:
        return render(request, "accounts/invite_invalid.html", {"reason": "unknown"}, status=404)
    if not invite.is_valid:
        return _invite_gone(request, invite)
    if request.user.is_authenticated:
        return render(request, "accounts/invite_signed_in.html", {"invite": invite})
    form = InviteAcceptForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = invite_redeem(
                invite=invite,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
            )
        except InviteNotValid:
            # Someone else took the last use while this form was being filled in.
            invite.refresh_from_db()
            return _invite_gone(request, invite)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}! Your account is ready.")
            return redirect("accounts:home")
    return render(request, "accounts/invite_accept.html", {"form": form, "invite": invite})


@login_required
@require_http_methods(["GET", "POST"])
def invites(request: HttpRequest) -> HttpResponse:
    form_class = StaffInviteCreateForm if request.user.is_staff else InviteCreateForm
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invite_create(
                created_by=request.user,
                max_uses=form.cleaned_data.get("max_uses") or 1,
                expires_days=form.cleaned_data.get("expires_days"),
                note=form.cleaned_data["note"],
            )
        except NoInvitesLeft as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Invite created: copy its link and send it to your friend.")
        return redirect("accounts:invites")
    rows = [
        {
            "invite": invite,
            "link": request.build_absolute_uri(invite.get_absolute_url()),
            "status": invite_status(invite),
        }
        for invite in invite_list_for_user(user=request.user)
    ]
    context = {"form": form, "rows": rows, "may_invite": user_may_invite(user=request.user)}
    return render(request, "accounts/invites.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST or None, user=request.user)
    created = secret = None
    if request.method == "POST" and form.is_valid():
        created, secret = api_token_create(
            owner=request.user,
            name=form.cleaned_data["name"],
            game=form.cleaned_data["game"],
            expires_days=form.cleaned_data["expires_days"],
        )
        form = ApiTokenCreateForm(user=request.user)
    rows = [
        {"token": token, "status": api_token_status(token)}
        for token in api_token_list_for_user(user=request.user)
    ]
    context = {"form": form, "rows": rows, "created": created, "secret": secret}
    response = render(request, "accounts/tokens.html", context)
    # The secret is on this page only: no cache may keep a copy.
    add_never_cache_headers(response)
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = api_token_get_for_owner(user=request.user, token_id=token_id)
    api_token_revoke(token=token, by=request.user)
    messages.success(request, f"Revoked the token “{token.name}”. It no longer works.")
    return redirect("accounts:tokens")


@login_required
@require_POST
def session_end(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_object_or_404(UserSession, pk=session_id, user_id=request.user.pk)
    was_current = session.is_current()
    get_usersessions_adapter().end_sessions([session])
    if was_current:
        logout(request)
        return redirect("account_login")
    messages.success(request, "That session has ended: the device is signed out.")
    return redirect("usersessions_list")
