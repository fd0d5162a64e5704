"""Where layergrad meets other tools' pipelines: ``ray`` (a Ray Data stage). Optional extras; the core never
imports them."""
