"""CSRF protection for every state-changing request: a signed double-submit cookie, no server-side state.

The browser holds a random secret in an HttpOnly cookie; every form carries HMAC(key, secret), the key derived from
the app's SECRET_KEY. A cross-site page can make the browser send the cookie but can neither read it nor compute the
token that matches it. Requests that the browser itself says came from another origin (Sec-Fetch-Site: same-site or
cross-site) are refused before any of that, which also stops a sibling subdomain that could plant a cookie of its
own; behind HTTPS the cookie is a __Host- cookie, which no other host can set. Logging in replaces the secret.
Unlike a token kept in a signed session cookie (Flask-WTF), this costs no cookie decoding on every request, only one
HMAC where a token is made or checked: the rater's pages are the survey's hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from flask import Flask, current_app, g, request
from flask.wrappers import Response
from werkzeug.exceptions import BadRequest

COOKIE_NAME = "survey_csrf"
SECURE_COOKIE_NAME = "__Host-survey_csrf"  # Secure, Path=/, no Domain: set by this host over HTTPS only
FORM_FIELD = "csrf_token"
HEADER = "X-CSRFToken"
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TRUSTED_FETCH_SITES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of this origin's own pages
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
KEY_EXTENSION = "survey_csrf_key"


class CSRFError(BadRequest):
    """A state-changing request without a valid CSRF token (HTTP 400)."""


def init_app(app: Flask) -> None:
    secret_key = app.config["SECRET_KEY"]
    secret_key = secret_key if isinstance(secret_key, bytes) else secret_key.encode()
    app.extensions[KEY_EXTENSION] = hmac.digest(secret_key, b"survey-app csrf", "sha256")
    app.before_request(refuse_forged_requests)
    app.after_request(_set_cookie)
    app.jinja_env.globals["csrf_token"] = csrf_token


def csrf_token() -> str:
    """The token for this browser's forms (and for the X-CSRFToken header of scripted requests)."""
    if "csrf_token" not in g:
        secret = _cookie_secret()
        if secret is None:
            renew_secret()
        else:
            g.csrf_token = _sign(secret)
    return g.csrf_token


def renew_secret() -> None:
    """A new secret (and so a new token) from this response on: at login, so that a secret planted before it is
    worthless afterwards."""
    g.csrf_new_secret = secrets.token_urlsafe(32)
    g.csrf_token = _sign(g.csrf_new_secret)


def refuse_forged_requests() -> None:
    if request.method not in STATE_CHANGING_METHODS:
        return
    if request.headers.get("Sec-Fetch-Site", "none") not in TRUSTED_FETCH_SITES:
        raise CSRFError("Request from another site refused.")
    secret = _cookie_secret()
    if secret is None:
        raise CSRFError("The CSRF cookie is missing: please enable cookies and reload the page.")
    token = request.form.get(FORM_FIELD) or request.headers.get(HEADER)
    if not token:
        raise CSRFError("The CSRF token is missing.")
    if not hmac.compare_digest(token.encode(errors="replace"), _sign(secret).encode()):
        raise CSRFError("The CSRF token is invalid: please reload the page.")


def _cookie_name() -> str:
    return SECURE_COOKIE_NAME if current_app.config["SESSION_COOKIE_SECURE"] else COOKIE_NAME


def _cookie_secret() -> str | None:
    secret = request.cookies.get(_cookie_name())
    return secret if secret is not None and SECRET_PATTERN.fullmatch(secret) else None


def _sign(secret: str) -> str:
    return hmac.new(current_app.extensions[KEY_EXTENSION], secret.encode(), hashlib.sha256).hexdigest()


def _set_cookie(response: Response) -> Response:
    secret = g.pop("csrf_new_secret", None)
    if secret is not None:
        config = current_app.config
        response.set_cookie(
            _cookie_name(),
            secret,
            httponly=True,
            secure=config["SESSION_COOKIE_SECURE"],
            samesite=config["SESSION_COOKIE_SAMESITE"],
        )
    return response
