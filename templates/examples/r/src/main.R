# [= name =]: the program this image runs (replace it with your own).
version <- Sys.getenv("MOJAP_IMAGE_VERSION", "default")
uid <- system2("id", "-u", stdout = TRUE)
cat(sprintf("Hello from [= name =] %s: R %s, uid %s, in %s\n", version, getRversion(), uid, getwd()))
