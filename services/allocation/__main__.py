from services.allocation.settings import AllocationSettings
from shared.web.serve import serve

serve("services.allocation.app:app", AllocationSettings())
