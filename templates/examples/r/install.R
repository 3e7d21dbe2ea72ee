# The CRAN packages the program needs, installed when the image is built (Rscript install.R).
# For reproducible builds pin versions, e.g. with renv (renv::restore()) or remotes::install_version().
packages <- character(0)

missing <- setdiff(packages, rownames(installed.packages()))
if (length(missing) > 0) {
  install.packages(missing, repos = "https://cloud.r-project.org")
}
