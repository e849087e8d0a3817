# gate as a container: runs "gate serve" as an unprivileged user.
#   docker build -t gate .
#   docker run -p 8080:8080 -v "$PWD/deploy:/etc/gate:ro" gate
# Mount a directory holding gate.yaml and the key files it names at /etc/gate.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /opt/gate
COPY pyproject.toml README.md ./
COPY gate ./gate
RUN pip install '.[redis]' \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gate

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"

ENTRYPOINT ["gate"]
CMD ["serve", "--config", "/etc/gate/gate.yaml", "--host", "0.0.0.0"]
