from services.projection.settings import ProjectionSettings
from shared.web.serve import serve

serve("services.projection.app:app", ProjectionSettings())
