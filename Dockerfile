FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY chad_memory ./chad_memory
COPY apps ./apps
COPY alembic ./alembic
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["chad-memory", "serve", "--host", "0.0.0.0", "--port", "8000"]
