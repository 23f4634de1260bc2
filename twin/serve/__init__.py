"""The twin as a virtual robot controller: in process, and served over OPC UA (OPC 40010)."""
