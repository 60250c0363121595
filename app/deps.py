"""Typed dependencies for what the app holds in `app.state` (set up in `app.main`)."""

from __future__ import annotations

from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.crypto import CredentialCipher
from app.platforms.registry import PlatformGateway


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def credential_cipher(request: Request) -> CredentialCipher:
    cipher: CredentialCipher = request.app.state.cipher
    return cipher


def sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return factory


def redis(request: Request) -> ArqRedis:
    client: ArqRedis = request.app.state.redis
    return client


def platform_gateway(request: Request) -> PlatformGateway:
    gateway: PlatformGateway = request.app.state.platform_gateway
    return gateway


SettingsDep = Annotated[Settings, Depends(app_settings)]
CipherDep = Annotated[CredentialCipher, Depends(credential_cipher)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(sessionmaker)]
RedisDep = Annotated[ArqRedis, Depends(redis)]
GatewayDep = Annotated[PlatformGateway, Depends(platform_gateway)]
