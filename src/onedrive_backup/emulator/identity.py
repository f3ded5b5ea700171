"""The identity platform: OpenID discovery, device code, token (three grants), authorize."""

from __future__ import annotations

import html
import json
import math
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from onedrive_backup.emulator.errors import json_response, oauth_error
from onedrive_backup.emulator.state import STATE, State
from onedrive_backup.emulator.tokens import (
    CONSUMERS_TENANT_ID,
    AuthCode,
    b64url,
    pkce_ok,
    unsigned_jwt,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def tenant_id(st: State) -> str:
    if st.spec.drive_type == "business":
        return "72f988bf-86f1-41af-91ab-2d7cd011db47"
    return CONSUMERS_TENANT_ID


def user_oid(st: State) -> str:
    uid = st.user_id
    return f"00000000-0000-0000-{uid[:4]}-{uid[4:16]}"


async def openid_configuration(request: web.Request) -> web.Response:
    st = request.app[STATE]
    tenant = request.match_info["tenant"]
    base = f"{st.graph_origin}/{tenant}/oauth2/v2.0"
    return json_response(
        {
            "issuer": f"{st.graph_origin}/{tenant_id(st)}/v2.0",
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "device_authorization_endpoint": f"{base}/devicecode",
            "end_session_endpoint": f"{base}/logout",
            "jwks_uri": f"{st.graph_origin}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
        }
    )


async def devicecode(request: web.Request) -> web.Response:
    st = request.app[STATE]
    form = await request.post()
    if form.get("client_id") != st.client_id:
        return _unknown_client(str(form.get("client_id")))
    code, entry = st.tokens.new_device_code(
        str(form.get("scope", "")), st.faults.device_code_lifetime
    )
    uri = f"{st.graph_origin}/devicelogin"
    return json_response(
        {
            "device_code": code,
            "user_code": entry.user_code,
            "verification_uri": uri,
            "expires_in": st.faults.device_code_lifetime,
            "interval": st.faults.device_poll_interval,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the "
            f"code {entry.user_code} to authenticate.",
        }
    )


async def devicelogin(request: web.Request) -> web.Response:
    """A stand-in for microsoft.com/devicelogin: visiting it approves the code (or all)."""
    st = request.app[STATE]
    code = request.query.get("user_code") or request.query.get("otc")
    n = st.tokens.approve(code)
    return web.Response(text=f"Approved {n} sign-in request(s). You can close this window.")


def _unknown_client(client_id: str) -> web.Response:
    return oauth_error(
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory.",
    )


async def token(request: web.Request) -> web.Response:
    st = request.app[STATE]
    form = {k: str(v) for k, v in (await request.post()).items()}
    if form.get("client_id") != st.client_id:
        return _unknown_client(form.get("client_id", ""))
    grant = form.get("grant_type")
    if grant == DEVICE_GRANT:
        return _device_grant(st, form)
    if grant == "refresh_token":
        st.counters.grant("refresh_token")
        if not st.tokens.refresh_valid(form.get("refresh_token", "")):
            return oauth_error(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity or was revoked. Send a new interactive authorization request.",
            )
        return _tokens(st, form.get("scope", ""))
    if grant == "authorization_code":
        return _auth_code_grant(st, form)
    return oauth_error(
        "unsupported_grant_type", 70003, f"The grant type '{grant}' is not supported."
    )


def _device_grant(st: State, form: dict[str, str]) -> web.Response:
    st.counters.grant("device_code_poll")
    entry = st.tokens.devices.get(form.get("device_code", ""))
    if entry is None or entry.state == "redeemed":
        return oauth_error("bad_verification_code", 70000, "The device code is invalid or used.")
    entry.polls += 1
    if time.time() > entry.expires_at:
        return oauth_error("expired_token", 70019, "Verification code expired.")
    if entry.state == "pending" and st.faults.auto_approve and entry.polls >= 2:
        entry.state = "approved"
    if entry.state == "declined":
        return oauth_error("authorization_declined", 65004, "User declined to consent.")
    if entry.state == "pending":
        return oauth_error(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )
    entry.state = "redeemed"
    st.counters.grant("device_code")
    return _tokens(st, form.get("scope") or entry.scope)


def _auth_code_grant(st: State, form: dict[str, str]) -> web.Response:
    st.counters.grant("authorization_code")
    entry = st.tokens.take_auth_code(form.get("code", ""))
    if entry is None or time.time() > entry.expires_at:
        return oauth_error("invalid_grant", 70000, "The provided authorization code is invalid.")
    if entry.redirect_uri != form.get("redirect_uri"):
        return oauth_error("invalid_grant", 50011, "The redirect URI does not match.")
    if not pkce_ok(entry, form.get("code_verifier")):
        return oauth_error(
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the request.",
        )
    return _tokens(st, form.get("scope") or entry.scope, nonce=entry.nonce)


def _tokens(st: State, scope: str, nonce: str | None = None) -> web.Response:
    lifetime = st.faults.access_token_lifetime
    now = int(time.time())
    claims: dict[str, Any] = {
        "ver": "2.0",
        "iss": f"{st.graph_origin}/{tenant_id(st)}/v2.0",
        "sub": b64url(user_oid(st).encode())[:43],
        "aud": st.client_id,
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "name": st.spec.user_name,
        "preferred_username": st.spec.user_email,
        "oid": user_oid(st),
        "tid": tenant_id(st),
    }
    if nonce:
        claims["nonce"] = nonce
    client_info = {"uid": user_oid(st), "utid": tenant_id(st)}
    return json_response(
        {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": max(1, math.ceil(lifetime)),
            "ext_expires_in": max(1, math.ceil(lifetime)),
            "access_token": st.tokens.mint_access(lifetime),
            "refresh_token": st.tokens.mint_refresh(),
            "id_token": unsigned_jwt(claims),
            "client_info": b64url(json.dumps(client_info).encode()),
        }
    )


async def authorize(request: web.Request) -> web.Response:
    """Consent at once and send the browser back with a code, as a signed-in user would."""
    st = request.app[STATE]
    q = request.query
    redirect = q.get("redirect_uri", "")
    if q.get("client_id") != st.client_id or not redirect:
        return web.Response(status=400, text="AADSTS700016: unknown client or no redirect_uri")
    code = st.tokens.new_auth_code(
        AuthCode(
            client_id=st.client_id,
            redirect_uri=redirect,
            scope=q.get("scope", ""),
            challenge=q.get("code_challenge"),
            method=q.get("code_challenge_method"),
            nonce=q.get("nonce"),
            expires_at=time.time() + 600,
        )
    )
    params = {"code": code}
    if "state" in q:
        params["state"] = q["state"]
    if q.get("response_mode") == "form_post":
        return web.Response(text=_form_post(redirect, params), content_type="text/html")
    sep = "&" if "?" in redirect else "?"
    return web.Response(status=302, headers={"Location": f"{redirect}{sep}{urlencode(params)}"})


def _form_post(redirect: str, params: dict[str, str]) -> str:
    """The auto-submitting form Entra answers with for response_mode=form_post."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
        for k, v in params.items()
    )
    return (
        "<html><head><title>Working...</title></head><body>"
        f'<form method="POST" name="hiddenform" action="{html.escape(redirect)}">{inputs}'
        "<noscript><p>Script is disabled. Click Submit to continue.</p>"
        '<input type="submit" value="Submit"/></noscript></form>'
        "<script>document.forms[0].submit();</script></body></html>"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", devicecode)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    app.router.add_get("/{tenant}/oauth2/v2.0/authorize", authorize)
    app.router.add_get("/devicelogin", devicelogin)
