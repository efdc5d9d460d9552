from allauth.account.adapter import DefaultAccountAdapter


class InviteOnlyAccountAdapter(DefaultAccountAdapter):
    """Public sign-up is closed; only a valid invite opens it."""

    def is_open_for_signup(self, request) -> bool:
        return False
