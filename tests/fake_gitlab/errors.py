"""Errors and the documented GitLab error body shapes (gitlab.md section 1).

Handlers raise ``ApiError``; the server turns it into a JSON response.  The
helpers below produce exactly the bodies GitLab sends:

- Grape parameter errors        400 ``{"error": "title is missing"}``
- helper ``bad_request!``       400 ``{"message": "400 Bad request - <reason>"}``
- service errors                400 ``{"message": "<text>"}``
- model validation              400 ``{"message": {"attr": ["msg"]}}``
- 401                           ``{"message": "401 Unauthorized"}``
- 403                           ``{"message": "403 Forbidden"}`` / ``"403 Forbidden - <reason>"``
- 404                           ``{"message": "404 <Resource> Not Found"}``
- 409                           ``{"message": "<text>"}`` or ``{"message": ["<text>"]}``
"""


class ApiError(Exception):
    def __init__(self, status, body, headers=None, content_type="application/json"):
        super().__init__(f"{status} {body!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


def missing(*names):
    """Grape: required parameters absent."""
    return ApiError(400, {"error": ", ".join(f"{n} is missing" for n in names)})


def invalid(name, what="is invalid"):
    """Grape: a parameter failed type/values validation."""
    return ApiError(400, {"error": f"{name} {what}"})


def bad_request(message):
    """A service error rendered with render_api_error!(message, 400)."""
    return ApiError(400, {"message": message})


def bad_request_helper(reason=None):
    """The bad_request! helper: "400 Bad request - <reason>"."""
    return ApiError(400, {"message": "400 Bad request" + (f" - {reason}" if reason else "")})


def validation(errors):
    """Model validation failure: {"message": {"attr": ["msg", ...]}}."""
    return ApiError(400, {"message": errors})


def unauthorized():
    return ApiError(401, {"message": "401 Unauthorized"})


def forbidden(reason=None):
    return ApiError(403, {"message": "403 Forbidden" + (f" - {reason}" if reason else "")})


def insufficient_scope(scopes=("api",)):
    # Shape of Gitlab::Auth::InsufficientScopeError (text unverified in gitlab.md).
    return ApiError(403, {
        "error": "insufficient_scope",
        "error_description": "The request requires higher privileges than provided by the access token.",
        "scope": " ".join(scopes),
    })


def not_found(resource=None):
    if resource is None:
        return ApiError(404, {"message": "404 Not found"})
    return ApiError(404, {"message": f"404 {resource} Not Found"})


def route_not_found():
    return ApiError(404, {"error": "404 Not Found"})


def method_not_allowed():
    return ApiError(405, {"message": "405 Method Not Allowed"})


def conflict(message):
    """409; ``message`` may be a string or a list (MR errors use a list)."""
    return ApiError(409, {"message": message})


def unprocessable(message, key="message"):
    return ApiError(422, {key: message})
