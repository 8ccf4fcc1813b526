"""The Telegram channel (aiogram 3): thin routers that show the engine's replies."""
