
import json, os, site, sys, sysconfig
needed = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(sys.executable)}
needed |= set(site.getsitepackages())
needed.add(sysconfig.get_config_var("LIBDIR") or sys.base_prefix)
found = {os.path.realpath(p) for p in needed} | {os.path.abspath(p) for p in needed}
found.add(os.path.dirname(os.path.realpath(sys.executable)))
print(json.dumps(sorted(found)))
