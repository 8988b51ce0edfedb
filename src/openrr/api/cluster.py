"""``GET /openrr/cluster``: capacity, nodes, warm pool and sessions per size, for operators.

Not part of any ARR API. It shows machine addresses, so account tokens are not enough: it takes an operator
token, which ``openrr cluster status`` mints with the store's signing key (only the service's own machines
can read the store).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from openrr.api.deps import bearer, runtime
from openrr.api.responses import ArrJSON
from openrr.services.tokens import OPERATOR_AUDIENCE

CLUSTER_PATH = "/openrr/cluster"

router = APIRouter(include_in_schema=False)


@router.get(CLUSTER_PATH)
async def cluster(request: Request) -> Response:
    rt = runtime(request)
    await rt.verify(bearer(request), audience=OPERATOR_AUDIENCE)
    return ArrJSON(await rt.cluster_status())
