#pragma once
// The picture files of a heatmap (beside its HDF5 file, heatmapeval.h): a PNG overlay over the slide's
// thumbnail and the ASAP likelihood map. Written the same way by `nic gradcam`, nic-studio's Grad-CAM job
// and the cluster path (through gradCamSlides(), core/heatmaps/nn/gradcamrun.h).
#include "core/heatmaps/heatmapeval.h"
#include "core/imaging/image.h"
#include "core/base/jobcontext.h"

#include <filesystem>

namespace nic {

/// `base` (any size, covering the whole slide) with the heat drawn over it in the jet colour map, scaled
/// to the heatmap's maximum; cells with no heat are left as they are.
Image heatmapOverlay(const HeatmapData& heatmap, const Image& base);

/// The picture under an overlay, `maxSide` px on its longer side with the slide's aspect: the slide's
/// thumbnail when `slidePath` names a readable slide, else the heatmap's tissue map (light grey on white;
/// the reason is logged to `job`).
Image heatmapBaseImage(const HeatmapData& heatmap, const std::filesystem::path& slidePath, int maxSide,
                       JobContext& job = JobContext::none());

/// Writes `<slide>_likelihood_map.tif` as ASAP reads it: an 8-bit grey pyramidal TIFF, one pixel per d × d
/// level-0 pixels with d = round(cell size) (an integer fraction of level 0, which ASAP overlays by that
/// ratio), heat scaled to 0–255 by the heatmap's maximum. Atomic; throws IoError naming the file.
void writeLikelihoodMap(const std::filesystem::path& path, const HeatmapData& heatmap, double slideMpp);

} // namespace nic
