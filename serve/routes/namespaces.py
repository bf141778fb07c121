"""Namespaces: list those a key reaches, and drop one (admin)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serve.auth import dakera_namespace
from serve.responses import NamespaceDeletedOut, NamespacesOut, answers
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import admin_namespace, ok, principal, service

router = APIRouter(route_class=EngramRoute)


@router.get("/v1/namespaces", responses=answers(NamespacesOut))
async def namespaces_list(request: Request) -> JSONResponse:
    p = await principal(request)
    names = [dakera_namespace(n.name) for n in await service(request).namespaces(p.scope)]
    return ok({"namespaces": names, "kinds": {name: "agent" for name in names}})


@router.delete("/v1/namespaces/{namespace:path}", responses=answers(NamespaceDeletedOut))
async def namespace_delete(request: Request, namespace: str) -> JSONResponse:
    svc, ns = await admin_namespace(request, namespace)
    return ok(await svc.drop_namespace(ns))
