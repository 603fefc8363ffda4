"""pycode"""
