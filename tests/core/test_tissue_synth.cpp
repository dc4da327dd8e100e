// Tissue detection against the synthetic generator's ground truth (issue: IoU >= 0.9).
#include "core/slide/slide.h"
#include "core/synth/synth.h"
#include "core/slide/tissue.h"
#include "testsupport.h"

#include <cstdio>
#include <ostream>

namespace {

struct IouCase {
    std::uint64_t seed;
    int lesions;
};

void PrintTo(const IouCase& c, std::ostream* os) { *os << "seed " << c.seed << ", " << c.lesions << " lesion(s)"; }

class TissueVsSynthetic : public ::testing::TestWithParam<IouCase> {};

TEST_P(TissueVsSynthetic, MaskAgreesWithGeneratorGroundTruth) {
    const IouCase c = GetParam();
    nic::test::TempDir dir;
    nic::SynthSlideParams params;
    params.width = 4096;
    params.height = 3072;
    params.seed = c.seed;
    params.lesionCount = c.lesions;
    const nic::SynthSlide synth(params);
    const auto path = dir / "slide.svs";
    nic::SynthWriteOptions wo;
    wo.threads = 2;
    synth.write(path, wo);

    const nic::Slide slide(path);
    const nic::TissueMask detected = nic::detectTissue(slide);
    // Ground truth on exactly the detected mask's grid.
    const nic::Image truthFine = synth.tissueMask(1.0);
    nic::TissueMask truth;
    truth.mask = truthFine;
    truth.level0Width = synth.width();
    truth.level0Height = synth.height();
    const nic::Image gt = truth.resampled(detected.mask.width, detected.mask.height);

    std::int64_t inter = 0, uni = 0;
    for (std::size_t i = 0; i < gt.pixels.size(); ++i) {
        const bool a = detected.mask.pixels[i] != 0;
        const bool b = gt.pixels[i] != 0;
        inter += (a && b) ? 1 : 0;
        uni += (a || b) ? 1 : 0;
    }
    ASSERT_GT(uni, 0);
    const double iou = static_cast<double>(inter) / static_cast<double>(uni);
    std::printf("[ info     ] seed %llu: tissue IoU vs ground truth = %.4f (mask %dx%d at %.2f um/px)\n",
                static_cast<unsigned long long>(c.seed), iou, detected.mask.width, detected.mask.height,
                detected.mpp);
    RecordProperty("tissue_iou", std::to_string(iou));
    EXPECT_GE(iou, 0.9);
}

INSTANTIATE_TEST_SUITE_P(Seeds, TissueVsSynthetic,
                         ::testing::Values(IouCase{11, 0}, IouCase{12, 2}, IouCase{13, 1}));

} // namespace
