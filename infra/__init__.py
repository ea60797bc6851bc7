"""Infrastructure as code: ``template.yaml`` (AWS SAM) generated from ``deploy.toml``.

``python -m infra.template`` (``make template``) writes it; the HTTP routes come from
``api/openapi.yaml``. Depends on :mod:`release` (settings, the mapping options ``make
deploy`` applies), so the template and ``make deploy`` cannot drift apart.
"""
