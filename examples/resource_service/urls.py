from django.urls import path

from resource_service.views import AdminOnlyApi, HelloApi, SensitiveApi

urlpatterns = [
    path("hello", HelloApi.as_view()),
    path("admin-only", AdminOnlyApi.as_view()),
    path("sensitive", SensitiveApi.as_view()),
]
